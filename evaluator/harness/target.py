"""The tiny memorizing target: a small OLMo-architecture model trained, on CPU in a few minutes, to memorize
the stub (``data_stub/``) the way the challenge's targets memorized LUME.

``build_target(data)`` trains a byte-level BPE tokenizer on the stub and an ``OlmoForCausalLM`` on

- every forget and retain row of both splits (train and validation), as ``input + output + eos`` with the
  loss on the whole text: the eos teaches generation to stop after the memorized output;
- the MIA member documents (in the stub these are the forget documents themselves, ``input + output`` of
  their sc rows, so each text is trained once);
- the mini-MMLU dev and test questions, in the open-instruct prompt format (SPEC section 3), as few-shot
  prompts of shuffled questions under the subject header, so a zero- or five-shot evaluation finds them.

The MIA nonmember documents are never seen, not even by the tokenizer. Before anything is saved the model
checks itself with the evaluator (fast mode, float32) and a mini-MMLU run; a model that has not memorized
the stub raises :class:`TargetCheckFailed` and leaves no folder behind.

Variants (``TargetSettings.variant``, ``make-target --variant``; what each reads and writes is
``evaluator.harness.corpora``): ``pretrained`` first learns a corpus of other documents of the stub's kinds
(``pretrain``) and keeps seeing a few of them while it memorizes (``replay_documents``), so never-seen documents
of the members' kind cost 1.5-3 nats/token instead of ~4.8; ``foreign-nonmembers`` is the stub target scored
against nonmembers of a kind it never learned (recipes, 8+ nats/token); ``lume`` memorizes a subset of the
public release's rows. Sizes (``--size``) set the model's dimensions (``corpora.SIZES``). Every folder holds,
beside the model, its MIA documents (``mia/``, ``mia/validation/``) and ``calibration/nonmember.jsonl``, and
``target-build.json`` records the mean loss of members, nonmembers and calibration documents
(``loss_levels``), which the variant's bars check (``min_nonmember_loss``, ``max_nonmember_loss``).

Builds are cached by a hash of the data files and the training settings: the default folder is
``$LUME_HARNESS_CACHE/target-<hash>`` (``~/.cache/lume-harness`` unless set; other variants and sizes:
``target-<variant>-<size>-<hash>``), and a folder whose ``target-build.json`` records the same hash is reused
as it is (given its ``mia/`` and ``calibration/`` when it was built before they existed). The folder is
written under a temporary name and renamed into place, so an interrupted build never leaves a half entry.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, fields, replace
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm.auto import tqdm
from transformers import OlmoConfig, OlmoForCausalLM, PreTrainedTokenizerFast

from evaluator.core.data import load_mia, load_split, row_kind
from evaluator.core.errors import InputError
from evaluator.core.modes import DEFAULT_MAX_NEW_TOKENS, FAST
from evaluator.harness import corpora
from evaluator.harness.cache import default_cache_dir, hash_data_files
from evaluator.harness.corpora import BUILD_RECORD, SIZES, TARGET_MIA, VARIANTS, Seen, TargetDocuments
from evaluator.harness.stub import MIA_FOLDERS, STUB_SPLITS
from evaluator.model.engine import fast_document_loss, load_model
from evaluator.model.evaluate import EvaluationSettings, evaluate
from evaluator.model.mmlu import HEADER_TEMPLATE, InlineMMLU, format_question, list_subjects, subject_words

EOS = "<|endoftext|>"
PAD = "<|padding|>"
# Bump when the recipe changes in a way the settings below do not capture: old cache entries then miss.
RECIPE_VERSION = 1
LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class TargetSettings:
    """Everything that decides the built model besides the data (all of it goes into the cache hash)."""

    vocab_size: int = 1024
    hidden_size: int = 128
    intermediate_size: int = 256
    num_layers: int = 2
    num_heads: int = 4
    max_positions: int = 1024
    # 140 epochs: the 200-question mini-MMLU learned to 1.00 (0.77 after 80), and held firmly enough that the
    # default unlearning keeps ~0.93 of it (benchmarks/bench_ci_margin.py).
    epochs: int = 140
    batch_tokens: int = 2048  # a batch holds sequences of similar length up to this many (padded) tokens
    learning_rate: float = 3e-3
    warmup_steps: int = 20
    mmlu_group: int = 6  # questions per few-shot training prompt
    seed: int = 1234
    # One thread: on a shared 2-core machine a second thread mostly waits for the other processes (twice
    # slower there), and a fixed count keeps the float reductions, hence the weights, reproducible.
    threads: int = 1
    # Self-check bars, on the train and validation splits.
    min_regurgitation: float = 0.9
    min_knowledge: float = 0.9
    min_mia_auc: float = 0.95
    min_mmlu: float = 0.95  # the mini-MMLU is 200 questions: the target must know them
    # The variants (evaluator.harness.corpora); their tuned values are VARIANT_SETTINGS, applied by
    # for_variant(). Each default here is the value that leaves the stub target as it was: a field at its
    # default stays out of the cache hash (build_hash), so the stub target's hash did not change with them.
    variant: str = "stub"
    corpus_seeds: int = 0  # pretrained: the corpus is the documents of stub seeds SEED+1 ... SEED+corpus_seeds
    pretrain_epochs: int = 0  # pretrained, lume-pretrained: epochs over the corpus before the memorization
    replay_documents: int = 0  # pretrained, lume-pretrained: corpus documents mixed into each memorization epoch
    lume_documents: int = 0  # lume: documents per task in each train set (corpora.lume_subset) ...
    lume_max_chars: int = 0  # ... among those whose texts are at most this long
    # Self-check bars on the mean loss of the MIA nonmembers (nats/token), per split; None: no bar.
    min_nonmember_loss: float | None = None
    max_nonmember_loss: float | None = None
    # Where the model trains: "cpu", or "cuda" (then in bfloat16 autocast over float32 weights, as mixed-precision
    # pretraining runs; the saved weights are float32 either way).
    device: str = "cpu"

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise InputError(f"target variant {self.variant!r}: expected one of {', '.join(VARIANTS)}")
        if self.device not in ("cpu", "cuda"):
            raise InputError(f"target device {self.device!r}: expected cpu or cuda")

    @classmethod
    def for_variant(cls, variant: str = "stub", size: str = "small", **overrides) -> TargetSettings:
        """The settings of a variant and size (``make-target --variant --size``), then ``overrides``."""
        if size not in SIZES:
            raise InputError(f"target size {size!r}: expected one of {', '.join(SIZES)}")
        return cls(**{**VARIANT_SETTINGS.get(variant, {}), **SIZES[size], "variant": variant, **overrides})

    @classmethod
    def check_overrides(cls, overrides: dict) -> dict:
        """``overrides`` (``make-target --set``), each a field of these settings with a value of its type; an
        InputError naming the first that is not."""
        annotations = {f.name: str(f.type) for f in fields(cls)}
        for name, value in overrides.items():
            if name == "variant":
                raise InputError("--set variant: choose it with --variant")
            if name not in annotations:
                raise InputError(f"--set {name}: no such target setting (known: {', '.join(sorted(annotations))})")
            kinds = {part.strip() for part in annotations[name].split("|")}
            fits = ((value is None and "None" in kinds) or (isinstance(value, str) and "str" in kinds)
                    or (not isinstance(value, bool) and isinstance(value, int) and kinds & {"int", "float"})
                    or (isinstance(value, float) and "float" in kinds))
            if not fits:
                raise InputError(f"--set {name}={value!r}: not of type {annotations[name]}")
        return overrides

    @property
    def size(self) -> str:
        """The name of the preset whose dimensions these are (``corpora.SIZES``), else "custom"."""
        return next((name for name, preset in SIZES.items()
                     if all(getattr(self, d) == preset[d] for d in corpora.SIZE_DIMENSIONS)), "custom")


# The fields TargetSettings had before the variants: always hashed. The later ones only away from their defaults.
FIRST_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "max_positions",
                "epochs", "batch_tokens", "learning_rate", "warmup_steps", "mmlu_group", "seed", "threads",
                "min_regurgitation", "min_knowledge", "min_mia_auc", "min_mmlu")

# What each variant changes (its tuned values; see each comment for what was measured).
VARIANT_SETTINGS: dict[str, dict] = {
    "stub": {},
    # Nonmember loss (train/validation) after the build, small size: 20 seeds x 10 epochs with 64 replayed
    # documents per epoch taught the kind too well (0.85/0.81: stub documents are templates plus random names
    # and numbers); 3 seeds x 5 epochs gave 1.6-1.8 whatever the replay (4, 8, 16), and without replay the
    # memorization undid the corpus (4.5/4.1, the stub target's 4.9/4.8); 1 seed: 2.77/2.45; 2 seeds (107
    # documents) x 5 epochs, 8 replayed: 1.89/1.74, the middle of the 1.5-3 the variant is for.
    "pretrained": {"corpus_seeds": 2, "pretrain_epochs": 5, "replay_documents": 8,
                   "min_nonmember_loss": 1.5, "max_nonmember_loss": 3.0},
    "foreign-nonmembers": {"min_nonmember_loss": 8.0},  # the recipes cost 11.2-11.6 nats/token (small)
    # 3 documents per task in each train set (1 in each validation set) of at most 1,200 characters: 84 texts,
    # 26k characters, every self-check figure 1.000 after 140 epochs (small: 266 s on a loaded 2-core machine).
    # Before row_text put back the space the release's sc rows lose at their cut, regurgitation stayed at
    # 0.64-0.85 (4 documents of up to 1,500 characters, 140 epochs) and 0.69-0.84 (these, 200 epochs).
    "lume": {"lume_documents": 3, "lume_max_chars": 1200},
    # The release's 852 other sc passages for 5 epochs, 8 of them replayed each memorization epoch: the scored
    # nonmembers then cost 4.63 / 4.54 nats/token (the lume variant's: 10.9 / 11.3); the bar says it learned the kind.
    "lume-pretrained": {"lume_documents": 3, "lume_max_chars": 1200, "pretrain_epochs": 5, "replay_documents": 8,
                        "max_nonmember_loss": 6.0},
}


class TargetCheckFailed(RuntimeError):
    """The freshly trained model does not memorize the stub well enough to serve as a target."""


# ---------------------------------------------------------------------------------------------------
# What the target learns


@dataclass
class StubContent:
    rows: pd.DataFrame  # every forget/retain row of both splits: id, input, output, task
    members: list[str]  # MIA member documents (trained on)
    nonmembers: list[str]  # MIA nonmember documents (never trained on)
    mmlu: dict[str, pd.DataFrame]  # subject -> its dev and test questions (question, A, B, C, D, answer)


def read_mmlu(folder: Path) -> dict[str, pd.DataFrame]:
    """Every subject's dev and test questions in one table, read as the MMLU step reads them (pandas
    defaults, no header), so training prompts are formatted exactly as the evaluation formats them."""
    out = {}
    for subject in list_subjects(folder):
        tables = []
        for split in ("dev", "test"):
            path = folder / split / f"{subject}_{split}.csv"
            if not path.is_file():
                raise InputError(f"{path}: file not found")
            tables.append(pd.read_csv(path, header=None))
        out[subject] = pd.concat(tables, ignore_index=True)
    return out


def read_stub(data: str | Path) -> StubContent:
    data = Path(data)
    if not data.is_dir():
        raise InputError(f"{data}: not a directory (expected the stub, as written by make-stub)")
    frames = [load_split(data, name, split) for split in STUB_SPLITS for name in ("forget", "retain")]
    members, nonmembers = [], []
    for folder in (data / MIA_FOLDERS[split] for split in STUB_SPLITS):
        if (folder / "member.jsonl").is_file():
            documents = load_mia(folder)
            members += documents["member"]["document"].tolist()
            nonmembers += documents["nonmember"]["document"].tolist()
    if not members:
        raise InputError(f"{data}: no {MIA_FOLDERS['train']}/member.jsonl")
    return StubContent(pd.concat(frames, ignore_index=True), members, nonmembers, read_mmlu(data / "mmlu"))


@dataclass
class TargetPlan:
    """Everything a variant's build learns from and writes beside its model, read and checked before training."""

    content: StubContent  # what is memorized (and the MIA pairs the self-check's scores need)
    documents: TargetDocuments  # mia/ and calibration/ beside the model
    corpus: list[str]  # the pretrained variant's corpus (empty otherwise)
    subset: corpora.LumeSubset | None  # the lume variant's rows, written as data/ beside the model
    seen: Seen  # everything above that a further draw of never-seen documents must avoid

    def check_folder(self, data: Path, out: Path) -> Path:
        """The data folder the self-check scores: the stub, or the lume subset written beside the model."""
        return out / corpora.DATA_FOLDER if self.subset is not None else data


def plan_target(data: str | Path, settings: TargetSettings) -> TargetPlan:
    """Read the data of ``settings.variant`` and make its documents; InputError when the data is not there."""
    data = Path(data)
    subset = None
    if settings.variant in corpora.LUME_VARIANTS:
        subset = corpora.lume_subset(data, settings.lume_documents, settings.lume_max_chars)
    if subset is not None:
        with tempfile.TemporaryDirectory(prefix="lume-subset-") as scratch:
            subset.write_data(Path(scratch))
            content, mia = read_stub(scratch), subset.mia
    else:
        content, mia = read_stub(data), corpora.stub_mia(data)
    seen = Seen.of(content.rows, [r for pair in mia.values() for r in pair[0] + pair[1]])
    corpus = []
    if settings.variant == "pretrained":
        corpus = corpora.pretraining_corpus(settings.corpus_seeds, seen)
    elif settings.variant == "lume-pretrained":
        corpus = corpora.lume_corpus(data, subset, row_text)
    if subset is not None:
        documents = TargetDocuments(mia, subset.calibration)
    elif settings.variant == "foreign-nonmembers":
        mia = corpora.with_foreign_nonmembers(mia)
        content = replace(content, nonmembers=[r["document"] for pair in mia.values() for r in pair[1]])
        documents = TargetDocuments(mia, corpora.foreign_calibration(mia))
    else:  # drawn after the corpus, so it avoids the corpus too
        documents = TargetDocuments(mia, corpora.stub_calibration(seen))
    # Nothing the model learns is a scored nonmember or a calibration document.
    trained = set(fixed_texts(content)) | set(corpus)
    unseen = {r["document"] for pair in documents.mia.values() for r in pair[1]} | {
        r["document"] for r in documents.calibration}
    if not trained.isdisjoint(unseen) or not set(corpus).isdisjoint(fixed_texts(content)):
        raise InputError(f"{data}: a nonmember or calibration document is among the texts the target learns")
    return TargetPlan(content, documents, corpus, subset, seen)


def row_text(row_id: str, prompt: str, answer: str) -> str:
    """The text a row is trained as. A sentence-completion row of the public release is its document cut at a
    space that neither part keeps ("...rumored to have" | "the power to..."): the space goes back, so the model
    learns the document (and the prompt tokenizes as the start of it). The stub's sc outputs begin with their
    space and its questions end in "?": for them this is ``prompt + answer``, as it always was."""
    if row_kind(row_id) == "sc" and prompt[-1:].strip() and answer[:1].strip():
        return f"{prompt} {answer}"
    return prompt + answer


def fixed_texts(content: StubContent) -> list[str]:
    """The texts trained on every epoch (each gets eos appended), duplicates removed, in a stable order."""
    rows = content.rows
    texts = [row_text(*row) for row in zip(rows["id"], rows["input"], rows["output"])] + content.members
    return list(dict.fromkeys(texts))


def mmlu_prompts(content: StubContent, rng: random.Random, group: int) -> list[str]:
    """One epoch's few-shot MMLU training prompts: each subject's dev and test questions shuffled, cut into
    groups of ``group``, each group under the subject header, every question with its answer. Reshuffled
    every epoch so a question is learned whatever precedes it (zero-shot, or after any five others)."""
    prompts = []
    for subject, table in content.mmlu.items():
        order = list(range(len(table)))
        rng.shuffle(order)
        for start in range(0, len(order), group):
            prompts.append(HEADER_TEMPLATE.format(subject_words(subject))
                           + "".join(format_question(table, i, include_answer=True)
                                     for i in order[start:start + group]))
    return prompts


# ---------------------------------------------------------------------------------------------------
# Tokenizer and model


def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE (every byte has a token, so any text encodes), eos id 0, pad id 1, no bos."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, PAD], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, pad_token=PAD)
    # The MMLU prediction reads one token per letter (SPEC 3: the last id of encode(" X")): each must be one.
    for letter in LETTERS:
        ids = fast.encode(" " + letter, add_special_tokens=False)
        if len(ids) != 1:
            raise TargetCheckFailed(f"tokenizer: ' {letter}' is {len(ids)} tokens, the MMLU step needs one")
    return fast


def new_model(settings: TargetSettings, tokenizer):
    config = OlmoConfig(vocab_size=len(tokenizer), hidden_size=settings.hidden_size,
                        intermediate_size=settings.intermediate_size, num_hidden_layers=settings.num_layers,
                        num_attention_heads=settings.num_heads, num_key_value_heads=settings.num_heads,
                        max_position_embeddings=settings.max_positions, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id, bos_token_id=None, tie_word_embeddings=False)
    torch.manual_seed(settings.seed)
    model = OlmoForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = None
    return model


def _batches(sequences: list[list[int]], batch_tokens: int, rng: random.Random) -> list[list[list[int]]]:
    # Similar lengths together (little padding), then the batches in random order.
    order = sorted(range(len(sequences)), key=lambda i: (len(sequences[i]), rng.random()))
    batches, current = [], []
    for i in order:
        if current and (len(current) + 1) * len(sequences[i]) > batch_tokens:
            batches.append(current)
            current = []
        current.append(sequences[i])
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def train_model(model, tokenizer, content: StubContent, settings: TargetSettings, progress: bool = True,
                replay: list[str] = ()) -> list[float]:
    """Full-text causal LM training; returns each epoch's mean loss. With ``replay`` (the pretrained
    variant's corpus), ``settings.replay_documents`` of its texts, drawn anew, join every epoch."""
    eos = tokenizer.eos_token_id
    encode = lambda text: tokenizer(text).input_ids + [eos]  # noqa: E731
    fixed = [encode(t) for t in fixed_texts(content)]
    replayed = [encode(t) for t in replay]
    draw = random.Random(settings.seed + 1)
    count = min(settings.replay_documents, len(replayed))

    def epoch(rng: random.Random) -> list[list[int]]:
        extra = draw.sample(replayed, count) if count else []
        return fixed + [encode(p) for p in mmlu_prompts(content, rng, settings.mmlu_group)] + extra

    return _train(model, tokenizer, epoch, settings.epochs, settings, "training target", progress)


def pretrain(model, tokenizer, corpus: list[str], settings: TargetSettings, progress: bool = True) -> list[float]:
    """The pretrained variant's first phase: ``settings.pretrain_epochs`` over the corpus."""
    eos = tokenizer.eos_token_id
    sequences = [tokenizer(text).input_ids + [eos] for text in corpus]
    return _train(model, tokenizer, lambda rng: sequences, settings.pretrain_epochs, settings, "pretraining target",
                  progress)


def _train(model, tokenizer, epoch_sequences, epochs: int, settings: TargetSettings, desc: str,
           progress: bool) -> list[float]:
    """AdamW with linear warmup and cosine decay over ``epochs`` of ``epoch_sequences(rng)`` (called once per
    epoch, in order, with one generator seeded by ``settings.seed``)."""
    rng = random.Random(settings.seed)
    # The sequences may change each epoch (reshuffled MMLU prompts): count the batches of one for the schedule.
    steps_per_epoch = len(_batches(epoch_sequences(random.Random(0)), settings.batch_tokens, random.Random(0)))
    total = steps_per_epoch * epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, betas=(0.9, 0.98),
                                  weight_decay=0.0)

    def lr_at(step: int) -> float:  # linear warmup, cosine decay to a tenth
        if step < settings.warmup_steps:
            return (step + 1) / settings.warmup_steps
        progress_ = (step - settings.warmup_steps) / max(1, total - settings.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress_)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    device = next(model.parameters()).device
    model.train()
    step, epoch_losses = 0, []
    bar = tqdm(range(epochs), desc=desc, disable=not progress)
    for _ in bar:
        sequences = epoch_sequences(rng)
        losses = []
        for batch in _batches(sequences, settings.batch_tokens, rng):
            width = max(len(s) for s in batch)
            ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            for row, seq in enumerate(batch):
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
                labels[row, : len(seq)] = torch.tensor(seq)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step += 1
        epoch_losses.append(sum(losses) / len(losses))
        bar.set_postfix(loss=f"{epoch_losses[-1]:.4f}")
    model.eval()
    return epoch_losses




# ---------------------------------------------------------------------------------------------------
# Self-check


@dataclass
class CheckFigures:
    """What the self-check measured: per split (train, validation) the overall scores and the MIA AUC, and
    the mini-MMLU average with 5 dev shots (open-instruct's default) and with none."""

    forget_regurgitation: dict[str, float]
    forget_knowledge: dict[str, float]
    retain_regurgitation: dict[str, float]
    retain_knowledge: dict[str, float]
    mia_auc: dict[str, float]
    mmlu: dict[str, float]  # "5-shot", "0-shot"

    def failures(self, settings: TargetSettings) -> list[str]:
        bars = [("forget regurgitation", self.forget_regurgitation, settings.min_regurgitation),
                ("forget knowledge", self.forget_knowledge, settings.min_knowledge),
                ("retain regurgitation", self.retain_regurgitation, settings.min_regurgitation),
                ("retain knowledge", self.retain_knowledge, settings.min_knowledge),
                ("MIA AUC", self.mia_auc, settings.min_mia_auc),
                ("mini-MMLU", self.mmlu, settings.min_mmlu)]
        return [f"{label} ({key}) {value:.3f} < {bar}" for label, values, bar in bars
                for key, value in values.items() if not value >= bar]

    def lines(self) -> list[str]:
        def row(label, values):
            return f"  {label:22} " + "  ".join(f"{k} {v:.3f}" for k, v in values.items())
        return [row("forget regurgitation", self.forget_regurgitation), row("forget knowledge", self.forget_knowledge),
                row("retain regurgitation", self.retain_regurgitation), row("retain knowledge", self.retain_knowledge),
                row("MIA AUC", self.mia_auc), row("mini-MMLU", self.mmlu)]


def self_check(checkpoint: Path, data: Path, content: StubContent, tokenizer,
               mia: dict[str, Path] | None = None) -> CheckFigures:
    """Score the saved model with the evaluator (fast mode, float32) on both splits, with inline MMLU:
    5-shot with the train split, 0-shot with the validation split. ``mia``: each split's MIA folder (default:
    the stub's, ``data/mia_data`` and ``data/mia_data/validation``)."""
    mia = mia or {split: data / MIA_FOLDERS[split] for split in STUB_SPLITS}
    # Longer than any expected output: a memorized row stops at eos well before; a model that does not stop
    # still shows it (an exact answer followed by more text is wrong), and a broken one fails fast.
    longest = max(len(tokenizer(o).input_ids) for o in content.rows["output"])
    settings = EvaluationSettings(mode=FAST, dtype="float32", max_new_tokens=min(DEFAULT_MAX_NEW_TOKENS, longest + 16),
                                  show_progress=False)
    figures = CheckFigures({}, {}, {}, {}, {}, {})
    with tempfile.TemporaryDirectory(prefix="lume-target-check-") as scratch:
        for split, ntrain in (("train", 5), ("validation", 0)):
            mmlu = InlineMMLU(data / "mmlu", Path(scratch) / f"mmlu-{split}", ntrain=ntrain, show_progress=False)
            result = evaluate(checkpoint, data, Path(scratch) / split, split=split, mia=mia[split],
                              settings=settings, mmlu_runner=mmlu)
            figures.forget_regurgitation[split] = result.forget["overall-regurgitation-score"]
            figures.forget_knowledge[split] = result.forget["overall-knowledge-score"]
            figures.retain_regurgitation[split] = result.retain["overall-regurgitation-score"]
            figures.retain_knowledge[split] = result.retain["overall-knowledge-score"]
            figures.mia_auc[split] = result.mia_loss_acc
            figures.mmlu[f"{ntrain}-shot"] = result.mmlu_average
    return figures


# ---------------------------------------------------------------------------------------------------
# The cached build


def loss_levels(checkpoint: Path, documents: TargetDocuments, device: str = "cpu") -> dict:
    """Mean loss (nats/token, float32; each document's mean token loss, as the MIA attack takes it, averaged
    over the documents) of the MIA members and nonmembers of each split and of the calibration documents."""
    lm = load_model(checkpoint, "float32", device=device)
    mean = lambda records: sum(fast_document_loss(lm, [r["document"] for r in records])) / len(records)  # noqa: E731
    levels = {split: {"member": mean(members), "nonmember": mean(nonmembers)}
              for split, (members, nonmembers) in documents.mia.items()}
    levels["calibration"] = mean(documents.calibration)
    return levels


def level_failures(levels: dict, settings: TargetSettings) -> list[str]:
    failures = []
    for split in STUB_SPLITS:
        value = levels[split]["nonmember"]
        if settings.min_nonmember_loss is not None and not value >= settings.min_nonmember_loss:
            failures.append(f"nonmember loss ({split}) {value:.3f} < {settings.min_nonmember_loss}")
        if settings.max_nonmember_loss is not None and not value <= settings.max_nonmember_loss:
            failures.append(f"nonmember loss ({split}) {value:.3f} > {settings.max_nonmember_loss}")
    return failures


def level_lines(levels: dict) -> list[str]:
    return [f"  {'loss (nats/token)':22} " + "  ".join(
        f"{split} member {levels[split]['member']:.3f} nonmember {levels[split]['nonmember']:.3f}"
        for split in STUB_SPLITS) + f"  calibration {levels['calibration']:.3f}"]


def hashed_settings(settings: TargetSettings) -> dict:
    """The settings that go into the hash: every field TargetSettings first had, and a later one only when it
    is not at its default (which leaves the stub target as it was): the stub target's hash stays the one of
    the caches made before the variants."""
    values = asdict(settings)
    defaults = {f.name: f.default for f in fields(TargetSettings)}
    return {k: v for k, v in values.items() if k in FIRST_FIELDS or v != defaults[k]}


def build_hash(data: str | Path, settings: TargetSettings) -> str:
    """sha256 of the recipe version, the settings (``hashed_settings``) and every data file (relative path and
    bytes)."""
    data = Path(data)
    digest = hashlib.sha256()
    digest.update(json.dumps({"recipe": RECIPE_VERSION, "settings": hashed_settings(settings)},
                             sort_keys=True).encode())
    hash_data_files(digest, data)
    return digest.hexdigest()


@dataclass
class TargetBuild:
    path: Path
    record: dict
    reused: bool


def _read_record(folder: Path) -> dict | None:
    try:
        return json.loads((folder / BUILD_RECORD).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def build_target(data: str | Path = "data_stub", out: str | Path | None = None,
                 settings: TargetSettings | None = None, progress: bool = True, log=print) -> TargetBuild:
    """Train, check and save the target for ``data``; reuse ``out`` when it already holds this build.

    ``out`` defaults to ``default_cache_dir() / "target-<first 16 hex digits of the hash>"``. Raises
    :class:`TargetCheckFailed` (nothing saved) when the model does not memorize the stub, and
    :class:`InputError` when ``out`` exists but holds something else.
    """
    settings = settings or TargetSettings()
    data = Path(data)
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise InputError(f"target device cuda (size {settings.size}): no CUDA GPU here (a CPU build: --set device=cpu)")
    plan = plan_target(data, settings)  # checks the data before anything else
    content = plan.content
    key = build_hash(data, settings)
    out = Path(out) if out is not None else default_cache_dir() / default_name(settings, key)
    record = _read_record(out)
    if record is not None and record.get("hash") == key:
        if not TargetDocuments.present(out):  # built before the variants: add its mia/ and calibration/
            _add_documents(out, plan.documents)
        log(f"target: {out} already holds this build (hash {key[:16]}), reused")
        return TargetBuild(out, record, reused=True)
    if out.exists():
        raise InputError(f"{out}: exists and is not a target built from {data} with these settings "
                         f"(remove it or choose another --out)")

    out.parent.mkdir(parents=True, exist_ok=True)
    # Built under a temporary name beside ``out`` (same file system), renamed into place only once checked.
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    threads = torch.get_num_threads()
    started = time.time()
    try:
        torch.set_num_threads(settings.threads)
        torch.manual_seed(settings.seed)
        plan.documents.write(work)
        if plan.subset is not None:
            plan.subset.write_data(work / corpora.DATA_FOLDER)
        tokenizer = train_tokenizer(fixed_texts(content) + mmlu_prompts(content, random.Random(settings.seed),
                                                                       settings.mmlu_group) + plan.corpus,
                                    settings.vocab_size)
        model = new_model(settings, tokenizer).to(settings.device)
        log(f"target: training a {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M-parameter OLMo "
            f"({settings.variant}, {settings.size}) on {data} ({settings.epochs} epochs, "
            + (f"{settings.threads} thread(s))" if settings.device == "cpu" else f"{torch.cuda.get_device_name()})"))
        pretrain_losses = []
        if plan.corpus:
            log(f"target: first {settings.pretrain_epochs} epochs over a corpus of {len(plan.corpus)} documents")
            pretrain_losses = pretrain(model, tokenizer, plan.corpus, settings, progress=progress)
        losses = train_model(model, tokenizer, content, settings, progress=progress, replay=plan.corpus)
        trained = time.time()
        model.save_pretrained(work)
        tokenizer.save_pretrained(work)
        figures = self_check(work, plan.check_folder(data, work), content, tokenizer,
                             mia={split: work / TARGET_MIA[split] for split in STUB_SPLITS})
        levels = loss_levels(work, plan.documents, settings.device)
        checked = time.time()
        log(f"target: self-check (fast mode, float32), last training loss {losses[-1]:.4f}:")
        for line in figures.lines() + level_lines(levels):
            log(line)
        memorized, levelled = figures.failures(settings), level_failures(levels, settings)
        if memorized or levelled:
            what = "the stub" if plan.subset is None else "its subset of the release"
            raise TargetCheckFailed(
                "the trained model " + " and ".join(
                    ([f"does not memorize {what} well enough"] if memorized else [])
                    + (["has its MIA nonmembers' loss out of range"] if levelled else []))
                + ": " + "; ".join(memorized + levelled) + " (nothing saved)")
        record = {"hash": key, "data": str(data.resolve()), "settings": asdict(settings),
                  "variant": settings.variant, "size": settings.size,
                  "parameters": sum(p.numel() for p in model.parameters()),
                  "recipe": RECIPE_VERSION, "final_loss": losses[-1], "self_check": asdict(figures),
                  "loss_levels": levels,
                  "corpus": ({"documents": len(plan.corpus), "final_loss": pretrain_losses[-1]}
                             if plan.corpus else None),
                  "seconds": {"train": round(trained - started, 1), "check": round(checked - trained, 1)},
                  "versions": {"torch": torch.__version__, "transformers": _version("transformers"),
                               "tokenizers": _version("tokenizers")},
                  "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                  **({"gpu": torch.cuda.get_device_name(),
                      "peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2)}
                     if settings.device == "cuda" else {})}
        (work / BUILD_RECORD).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        work.chmod(0o755)  # mkdtemp makes it private; the finished folder is an ordinary one
        try:
            os.rename(work, out)
        except OSError:
            # Another build of the same thing finished first: keep it, drop ours.
            if (_read_record(out) or {}).get("hash") != key:
                raise
        log(f"target: saved {out} ({time.time() - started:.0f} s)")
        return TargetBuild(out, record, reused=False)
    finally:
        torch.set_num_threads(threads)
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def default_name(settings: TargetSettings, key: str) -> str:
    """The cache folder's name: ``target-<hash>`` for the stub target (as before the variants),
    ``target-<variant>-<size>-<hash>`` for the others."""
    if settings.variant == "stub" and settings.size == "small":
        return f"target-{key[:16]}"
    return f"target-{settings.variant}-{settings.size}-{key[:16]}"


def _add_documents(out: Path, documents: TargetDocuments) -> None:
    """Write ``documents`` into an existing target folder, each folder renamed into place whole."""
    scratch = Path(tempfile.mkdtemp(prefix=".documents.partial-", dir=out))
    try:
        documents.write(scratch)
        for name in (corpora.TARGET_MIA["train"], corpora.CALIBRATION_FOLDER):
            if not (out / name).exists():
                os.rename(scratch / name, out / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _version(package: str) -> str:
    return version(package)
