"""All model I/O of the evaluator: loading, generation, loss passes, batching and distribution.

Two modes, looked up by name in ``MODES``:

- ``official``: SPEC section 2 line by line. One row at a time, no attention mask, greedy,
  ``max_new_tokens=256``, loss masked by the prompt's length, the whole document for MIA.
- ``fast``: the same quantities batched. Generation is left-padded with an attention mask, rows sorted
  by prompt length, and a batch stops as soon as all its rows have ended; loss passes are right-padded
  and each row's loss is the mean over its own label tokens. bfloat16 rounding depends on batch shape, so
  an unsure model can flip a greedy choice here and there (SPEC section 6); a confident one does not.

Both shard rows over the processes of an ``accelerate launch`` (contiguous shards, no padding: the
official script's repeated rows do not happen here) and gather them, in the original order, on the
main process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from safetensors import safe_open
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList

from evaluator.core.errors import InputError
from evaluator.core.modes import DEFAULT_MODE, FAST, OFFICIAL

# Called with (index in the rows given, result) as each row is finished (official mode). ``run_sharded`` maps
# a shard's indices back to those of all the rows.
RowCallback = Callable[[int, object], None]
DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    path: Path


def check_checkpoint(path: str | Path) -> Path:
    """Fail early, before anything is written, on a folder that cannot be a checkpoint."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: checkpoint folder not found")
    if not (path / "config.json").is_file():
        raise InputError(f"{path}: no config.json, not a Hugging Face model folder")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise InputError(f"{path}: no tokenizer (none of {', '.join(TOKENIZER_FILES)})")
    return path


def load_tokenizer(path: str | Path, trust_remote_code: bool = False):
    path = check_checkpoint(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as exc:  # transformers raises many types for a broken tokenizer
        raise InputError(f"{path}: cannot load the tokenizer ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    if tokenizer.eos_token is None:
        raise InputError(f"{path}: the tokenizer has no eos token (the official script pads with it)")
    tokenizer.pad_token = tokenizer.eos_token  # SPEC 2
    return tokenizer


def broken_weight_file(folder: str | Path) -> str | None:
    """One line naming the first ``*.safetensors`` file under ``folder`` whose header does not read (truncated,
    empty, not safetensors at all), or None. Reads headers only: cheap even for large shards."""
    for file in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(file, framework="pt"):
                pass
        except Exception as exc:  # SafetensorError, OSError, ...
            return f"{file}: corrupt safetensors file ({type(exc).__name__}: {exc})".splitlines()[0]
    return None


def load_model(path: str | Path, dtype: str = "bfloat16", trust_remote_code: bool = False,
               device: str | torch.device | None = None) -> LoadedModel:
    """SPEC 2: ``AutoModelForCausalLM`` in ``dtype`` (bfloat16 by default), tokenizer from the same folder
    with ``pad_token = eos_token``. ``trust_remote_code`` is off unless asked for (the official script had
    it on; the checkpoints of the challenge load without it)."""
    tokenizer = load_tokenizer(path, trust_remote_code)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code)
    except Exception as exc:
        broken = broken_weight_file(path)
        if broken is not None:
            raise InputError(broken) from None
        raise InputError(f"{path}: cannot load the model ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    model.eval()
    if device is not None:
        model.to(device)
    return LoadedModel(model, tokenizer, Path(path))


# ---------------------------------------------------------------------------------------------------
# Distribution


def distributed_state():
    """accelerate's process state (one process unless started by ``accelerate launch``)."""
    state = PartialState(cpu=not torch.cuda.is_available())
    if state.num_processes > 1 and state.device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # N processes on one CPU share its cores instead of each taking all of them.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // state.num_processes))
    return state


def end_distributed() -> None:
    """Under several processes: wait for all, then tear the process group down before the interpreter exits.
    Left to exit-time destructors, gloo's threads could abort one process ("terminate called without an
    active exception", exit -6) while another was still closing its connections: once in 9 two-process runs."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def run_sharded(items: Sequence, work: Callable[[list, RowCallback | None], list], state=None,
                on_row: RowCallback | None = None) -> list | None:
    """Run ``work(shard, shard_on_row)`` on this process's contiguous shard of ``items`` and gather every
    result on the main process, in the order of ``items``. Returns None on the other processes. ``on_row``
    (index in ``items``, result) is called on the process that finished the row (``work`` calls
    ``shard_on_row`` with the index in its shard)."""
    if state is None or state.num_processes == 1:
        return work(list(items), on_row)
    indices = list(range(len(items)))
    with state.split_between_processes(indices, apply_padding=False) as mine:
        shard_on_row = None if on_row is None else (lambda j, result: on_row(mine[j], result))
        results = list(zip(mine, work([items[i] for i in mine], shard_on_row)))
    gathered = gather_object(results)
    if not state.is_main_process:
        return None
    ordered = [result for _, result in sorted(gathered, key=lambda pair: pair[0])]
    assert len(ordered) == len(items), "rows lost or repeated while gathering"
    return ordered


# ---------------------------------------------------------------------------------------------------
# Official mode: SPEC 2, one row at a time


@torch.no_grad()
def official_generate(lm: LoadedModel, prompt: str, max_new_tokens: int) -> str:
    """SPEC 2: greedy, no attention mask, the official decoding flags; the text after the prompt."""
    model, tok = lm.model, lm.tokenizer
    prompt_ids = tok(prompt, return_tensors="pt").input_ids.to(next(model.parameters()).device)
    generated = model.generate(prompt_ids, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                               pad_token_id=tok.eos_token_id)
    return tok.batch_decode(generated[:, prompt_ids.shape[1]:], skip_special_tokens=True,
                            clean_up_tokenization_spaces=True)[0]


@torch.no_grad()
def official_generate_and_loss(lm: LoadedModel, rows: list[tuple[str, str]], max_new_tokens: int,
                               progress: str = "", on_row: RowCallback | None = None) -> list[tuple[str, float]]:
    """(model_output, nll) per row; ``on_row(i, result)`` is called as soon as row ``i`` is done."""
    model, tok = lm.model, lm.tokenizer
    device = next(model.parameters()).device
    out = []
    for question, answer in tqdm(rows, desc=progress, disable=not progress):
        prompt_length = len(tok(question).input_ids)
        full_ids = tok(question + answer, return_tensors="pt").input_ids.to(device)
        labels = full_ids.clone()
        labels[:, :prompt_length] = -100  # by the prompt's length, even if the boundary re-tokenized
        text = official_generate(lm, question, max_new_tokens)
        nll = model(full_ids, labels=labels).loss.item()
        out.append((text, nll))
        if on_row is not None:
            on_row(len(out) - 1, out[-1])
    return out


@torch.no_grad()
def official_document_loss(lm: LoadedModel, documents: list[str], progress: str = "",
                           on_row: RowCallback | None = None) -> list[float]:
    model, tok = lm.model, lm.tokenizer
    device = next(model.parameters()).device
    out = []
    for document in tqdm(documents, desc=progress, disable=not progress):
        ids = tok(document, return_tensors="pt").input_ids.to(device)
        out.append(model(ids, labels=ids.clone()).loss.item())
        if on_row is not None:
            on_row(len(out) - 1, out[-1])
    return out


# ---------------------------------------------------------------------------------------------------
# Fast mode: batched, length-sorted


def _batches_by_length(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    # Longest first: a batch that does not fit in memory fails at once, not at the end.
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


class _GreedyMarginRecorder:
    """A logits processor that records, per row and step, the gap between the two best next-token logits.

    Greedy decoding picks the same token as another run of the same model whenever that gap is larger
    than the rounding difference between the two runs; the recheck below relies on it."""

    def __init__(self):
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids, scores):
        top2 = scores.float().topk(2, dim=-1).values
        self.steps.append((top2[:, 0] - top2[:, 1]).cpu())
        return scores

    def row_minimum(self, generated: torch.Tensor, eos_token_id: int) -> torch.Tensor:
        """Smallest gap of each row over the steps up to and including its own end of sequence."""
        gaps = torch.stack(self.steps, dim=1)  # rows x steps
        alive = torch.ones_like(gaps, dtype=torch.bool)
        ended = (generated[:, : gaps.shape[1]] == eos_token_id).cpu()
        after_end = (ended.cumsum(dim=1) - ended.long()) > 0  # steps after the first eos
        alive &= ~after_end
        return torch.where(alive, gaps, torch.full_like(gaps, float("inf"))).min(dim=1).values


@torch.no_grad()
def batched_generate(lm: LoadedModel, prompts: list[str], max_new_tokens: int, batch_size: int,
                     progress: str = "", recheck_margin: float = 0.0) -> list[str]:
    """Greedy generation in length-sorted, left-padded batches.

    Padding changes how bfloat16 attention rounds (SPEC section 6), so a row whose best and second-best
    next tokens were ever closer than ``recheck_margin`` (in logits) is generated again the official way,
    one row without a mask. With a margin above the rounding noise (0.25 is ample for bfloat16 logits of
    the size these models produce) the generations are those of official mode; 0 turns the recheck off.
    """
    model, tok = lm.model, lm.tokenizer
    device = next(model.parameters()).device
    encoded = [tok(p).input_ids for p in prompts]
    results: list[str] = [""] * len(prompts)
    unsure: list[int] = []
    for batch in tqdm(_batches_by_length([len(e) for e in encoded], batch_size), desc=progress,
                      disable=not progress):
        width = max(len(encoded[i]) for i in batch)
        input_ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):  # left padding: every prompt ends where generation starts
            input_ids[row, width - len(encoded[i]):] = torch.tensor(encoded[i])
            attention[row, width - len(encoded[i]):] = 1
        recorder = _GreedyMarginRecorder()
        generated = model.generate(input_ids.to(device), attention_mask=attention.to(device),
                                   max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                                   pad_token_id=tok.eos_token_id,
                                   logits_processor=LogitsProcessorList([recorder]) if recheck_margin > 0 else None)
        new_tokens = generated[:, width:]
        texts = tok.batch_decode(new_tokens, skip_special_tokens=True, clean_up_tokenization_spaces=True)
        for i, text in zip(batch, texts):
            results[i] = text
        if recheck_margin > 0 and recorder.steps:
            margins = recorder.row_minimum(new_tokens, tok.eos_token_id)
            unsure += [i for i, margin in zip(batch, margins.tolist()) if margin < recheck_margin]
    for i in tqdm(sorted(unsure), desc=f"{progress} recheck" if progress else "", disable=not progress):
        results[i] = official_generate(lm, prompts[i], max_new_tokens)
    return results


@torch.no_grad()
def batched_loss(lm: LoadedModel, sequences: list[list[int]], label_starts: list[int], batch_size: int,
                 progress: str = "") -> list[float]:
    """Per-sequence mean cross-entropy over positions ``label_starts[i]`` onwards (the model's own shift:
    token t is predicted from positions < t). Right-padded batches, float32 loss as the model's own."""
    model = lm.model
    device = next(model.parameters()).device
    pad = lm.tokenizer.pad_token_id
    results = [float("nan")] * len(sequences)
    for batch in tqdm(_batches_by_length([len(s) for s in sequences], batch_size), desc=progress,
                      disable=not progress):
        width = max(len(sequences[i]) for i in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for row, i in enumerate(batch):
            seq = torch.tensor(sequences[i])
            input_ids[row, : len(seq)] = seq
            attention[row, : len(seq)] = 1
            labels[row, label_starts[i]: len(seq)] = seq[label_starts[i]:]
        logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
        targets = labels[:, 1:].to(device)
        for row, i in enumerate(batch):  # one row at a time keeps the float32 copy of the logits small
            row_logits = logits[row, :-1].float()
            token_nll = torch.nn.functional.cross_entropy(row_logits, targets[row], ignore_index=-100,
                                                          reduction="sum")
            count = (targets[row] != -100).sum()
            results[i] = (token_nll / count).item()
    return results


def fast_generate_and_loss(lm: LoadedModel, rows: list[tuple[str, str]], max_new_tokens: int,
                           batch_size: int = 16, progress: str = "",
                           recheck_margin: float = 0.0) -> list[tuple[str, float]]:
    tok = lm.tokenizer
    texts = batched_generate(lm, [q for q, _ in rows], max_new_tokens, batch_size,
                             progress=f"{progress} generate" if progress else "", recheck_margin=recheck_margin)
    prompt_lengths = [len(tok(q).input_ids) for q, _ in rows]
    sequences = [tok(q + a).input_ids for q, a in rows]
    losses = batched_loss(lm, sequences, prompt_lengths, batch_size, progress=f"{progress} loss" if progress else "")
    return list(zip(texts, losses))


def fast_document_loss(lm: LoadedModel, documents: list[str], batch_size: int = 16,
                       progress: str = "") -> list[float]:
    sequences = [lm.tokenizer(d).input_ids for d in documents]
    return batched_loss(lm, sequences, [0] * len(sequences), batch_size, progress=progress)


@dataclass(frozen=True)
class Mode:
    """How one mode computes the two things the scoring needs."""

    generate_and_loss: Callable[..., list[tuple[str, float]]]
    document_loss: Callable[..., list[float]]
    batched: bool


MODES: dict[str, Mode] = {
    OFFICIAL: Mode(official_generate_and_loss, official_document_loss, batched=False),
    FAST: Mode(fast_generate_and_loss, fast_document_loss, batched=True),
}


@dataclass
class Engine:
    """A loaded model plus the settings of one evaluation run."""

    lm: LoadedModel
    mode: str = DEFAULT_MODE
    max_new_tokens: int = 256
    batch_size: int = 16
    show_progress: bool = True
    state: object = None
    recheck_margin: float = 0.0

    def _kwargs(self) -> dict:
        return {"batch_size": self.batch_size} if MODES[self.mode].batched else {}

    def _label(self, name: str) -> str:
        main = self.state is None or self.state.is_main_process
        return name if (self.show_progress and main) else ""

    def supports_row_callback(self) -> bool:
        """Official mode: rows are computed one by one, independently (resume per row), on every process."""
        return not MODES[self.mode].batched

    def _check_callback(self, on_row: RowCallback | None) -> None:
        if on_row is not None and not self.supports_row_callback():
            raise ValueError("on_row needs official mode")

    @staticmethod
    def _callback(on_row: RowCallback | None) -> dict:
        return {} if on_row is None else {"on_row": on_row}

    def generations(self, rows: list[tuple[str, str]], name: str = "",
                    on_row: RowCallback | None = None) -> list[tuple[str, float]] | None:
        """(model_output, nll) per (input, output) row; None on processes other than the main one.
        ``on_row`` (see :meth:`supports_row_callback`) is called as each row is finished."""
        mode = MODES[self.mode]
        extra = {"recheck_margin": self.recheck_margin} if mode.batched else {}
        self._check_callback(on_row)
        return run_sharded(rows, lambda shard, shard_on_row: mode.generate_and_loss(
            self.lm, shard, self.max_new_tokens, progress=self._label(name), **self._kwargs(), **extra,
            **self._callback(shard_on_row)), self.state, on_row)

    def document_losses(self, documents: list[str], name: str = "",
                        on_row: RowCallback | None = None) -> list[float] | None:
        mode = MODES[self.mode]
        self._check_callback(on_row)
        return run_sharded(documents, lambda shard, shard_on_row: mode.document_loss(
            self.lm, shard, progress=self._label(name), **self._kwargs(), **self._callback(shard_on_row)),
            self.state, on_row)
