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

Builds are cached by a hash of the data files and the training settings: the default folder is
``$LUME_HARNESS_CACHE/target-<hash>`` (``~/.cache/lume-harness`` unless set), and a folder whose
``target-build.json`` records the same hash is reused as it is. The folder is written under a temporary
name and renamed into place, so an interrupted build never leaves a half entry.
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
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm.auto import tqdm
from transformers import OlmoConfig, OlmoForCausalLM, PreTrainedTokenizerFast

from evaluator.core.data import load_mia, load_split
from evaluator.core.errors import InputError
from evaluator.core.modes import DEFAULT_MAX_NEW_TOKENS, FAST
from evaluator.harness.cache import default_cache_dir, hash_data_files
from evaluator.harness.stub import MIA_FOLDERS, STUB_SPLITS, mia_folder
from evaluator.model.evaluate import EvaluationSettings, evaluate
from evaluator.model.mmlu import HEADER_TEMPLATE, InlineMMLU, format_question, list_subjects, subject_words

EOS = "<|endoftext|>"
PAD = "<|padding|>"
BUILD_RECORD = "target-build.json"
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


def fixed_texts(content: StubContent) -> list[str]:
    """The texts trained on every epoch (each gets eos appended), duplicates removed, in a stable order."""
    texts = [i + o for i, o in zip(content.rows["input"], content.rows["output"])] + content.members
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


def train_model(model, tokenizer, content: StubContent, settings: TargetSettings, progress: bool = True) -> list[float]:
    """Full-text causal LM training; returns each epoch's mean loss."""
    rng = random.Random(settings.seed)
    eos = tokenizer.eos_token_id
    encode = lambda text: tokenizer(text).input_ids + [eos]  # noqa: E731
    fixed = [encode(t) for t in fixed_texts(content)]
    # The MMLU prompts are reshuffled each epoch; count the batches of one epoch for the schedule.
    steps_per_epoch = len(_batches(fixed + [encode(p) for p in mmlu_prompts(content, random.Random(0),
                                                                              settings.mmlu_group)],
                                   settings.batch_tokens, random.Random(0)))
    total = steps_per_epoch * settings.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, betas=(0.9, 0.98),
                                  weight_decay=0.0)

    def lr_at(step: int) -> float:  # linear warmup, cosine decay to a tenth
        if step < settings.warmup_steps:
            return (step + 1) / settings.warmup_steps
        progress_ = (step - settings.warmup_steps) / max(1, total - settings.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress_)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    model.train()
    step, epoch_losses = 0, []
    bar = tqdm(range(settings.epochs), desc="training target", disable=not progress)
    for _ in bar:
        sequences = fixed + [encode(p) for p in mmlu_prompts(content, rng, settings.mmlu_group)]
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
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
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


def self_check(checkpoint: Path, data: Path, content: StubContent, tokenizer) -> CheckFigures:
    """Score the saved model with the evaluator (fast mode, float32) on both splits, with inline MMLU:
    5-shot with the train split, 0-shot with the validation split."""
    # Longer than any expected output: a memorized row stops at eos well before; a model that does not stop
    # still shows it (an exact answer followed by more text is wrong), and a broken one fails fast.
    longest = max(len(tokenizer(o).input_ids) for o in content.rows["output"])
    settings = EvaluationSettings(mode=FAST, dtype="float32", max_new_tokens=min(DEFAULT_MAX_NEW_TOKENS, longest + 16),
                                  show_progress=False)
    figures = CheckFigures({}, {}, {}, {}, {}, {})
    with tempfile.TemporaryDirectory(prefix="lume-target-check-") as scratch:
        for split, ntrain in (("train", 5), ("validation", 0)):
            mmlu = InlineMMLU(data / "mmlu", Path(scratch) / f"mmlu-{split}", ntrain=ntrain, show_progress=False)
            result = evaluate(checkpoint, data, Path(scratch) / split, split=split, mia=mia_folder(data, split),
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


def build_hash(data: str | Path, settings: TargetSettings) -> str:
    """sha256 of the recipe version, the settings and every data file (relative path and bytes)."""
    data = Path(data)
    digest = hashlib.sha256()
    digest.update(json.dumps({"recipe": RECIPE_VERSION, "settings": asdict(settings)}, sort_keys=True).encode())
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
    content = read_stub(data)  # checks the data before anything else
    key = build_hash(data, settings)
    out = Path(out) if out is not None else default_cache_dir() / f"target-{key[:16]}"
    record = _read_record(out)
    if record is not None and record.get("hash") == key:
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
        tokenizer = train_tokenizer(fixed_texts(content) + mmlu_prompts(content, random.Random(settings.seed),
                                                                       settings.mmlu_group),
                                    settings.vocab_size)
        model = new_model(settings, tokenizer)
        log(f"target: training a {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M-parameter OLMo on "
            f"{data} ({settings.epochs} epochs, {settings.threads} thread(s))")
        losses = train_model(model, tokenizer, content, settings, progress=progress)
        trained = time.time()
        model.save_pretrained(work)
        tokenizer.save_pretrained(work)
        figures = self_check(work, data, content, tokenizer)
        checked = time.time()
        log(f"target: self-check (fast mode, float32), last training loss {losses[-1]:.4f}:")
        for line in figures.lines():
            log(line)
        failures = figures.failures(settings)
        if failures:
            raise TargetCheckFailed("the trained model does not memorize the stub well enough: "
                                    + "; ".join(failures) + " (nothing saved)")
        record = {"hash": key, "data": str(data.resolve()), "settings": asdict(settings),
                  "recipe": RECIPE_VERSION, "final_loss": losses[-1], "self_check": asdict(figures),
                  "seconds": {"train": round(trained - started, 1), "check": round(checked - trained, 1)},
                  "versions": {"torch": torch.__version__, "transformers": _version("transformers"),
                               "tokenizers": _version("tokenizers")},
                  "cpu_capability": torch.backends.cpu.get_cpu_capability()}
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


def _version(package: str) -> str:
    return version(package)
