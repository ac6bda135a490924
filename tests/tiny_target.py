"""A memorizing target the tests build themselves in a few seconds (no ../shared): a one-layer OLMo trained
on a handful of the stub's forget and retain rows until it regurgitates them, saved as the organizers'
input folder, with the rows as the two set folders a submission is handed."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

STUB = Path(__file__).resolve().parents[1] / "data_stub"


@dataclass
class TinyTarget:
    model: Path
    forget: Path
    retain: Path
    forget_rows: pd.DataFrame
    retain_rows: pd.DataFrame


def _rows(name: str, count: int) -> pd.DataFrame:
    rows = pd.read_json(STUB / "data" / f"{name}_train-00000-of-00001.jsonl", lines=True, dtype=False)
    # A few whole documents (their sc and qa rows), so both kinds are there.
    stems = list(dict.fromkeys(rows["id"].str[:-3]))[:count]
    return rows[rows["id"].str[:-3].isin(stems)].reset_index(drop=True)


def build_tiny_target(folder: Path, documents: int = 3, steps: int = 300, seed: int = 0) -> TinyTarget:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import OlmoConfig, OlmoForCausalLM, PreTrainedTokenizerFast

    forget, retain = _rows("forget", documents), _rows("retain", documents)
    texts = [i + o for rows in (forget, retain) for i, o in zip(rows["input"], rows["output"])]
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=["<eos>"], show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<eos>", pad_token="<eos>")
    torch.manual_seed(seed)
    config = OlmoConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                        eos_token_id=0, pad_token_id=0, bos_token_id=None, tie_word_embeddings=False)
    model = OlmoForCausalLM(config)
    encoded = [tokenizer(t).input_ids + [0] for t in texts]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = random.Random(seed)
    model.train()
    for _ in range(steps):
        batch = rng.sample(encoded, min(8, len(encoded)))
        width = max(map(len, batch))
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(batch):
            ids[row, :len(seq)] = labels[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    model.generation_config.eos_token_id = 0
    model.generation_config.pad_token_id = 0
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    for name, rows in (("forget", forget), ("retain", retain)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / f"{name}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[["id", "input", "output", "task"]]
                    .to_dict("records")), encoding="utf-8")
    return TinyTarget(folder / "model", folder / "forget", folder / "retain", forget, retain)


@torch.no_grad()
def mean_answer_loss(model_dir: Path, rows: pd.DataFrame) -> float:
    """Mean over rows of the official per-row loss (answer tokens, prompt masked), float32."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    losses = []
    for prompt, answer in zip(rows["input"], rows["output"]):
        ids = tokenizer(prompt + answer, return_tensors="pt").input_ids
        labels = ids.clone()
        labels[:, :len(tokenizer(prompt).input_ids)] = -100
        losses.append(float(model(input_ids=ids, labels=labels).loss))
    return sum(losses) / len(losses)
