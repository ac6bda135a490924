"""One evaluation run: the engine's generations and losses, written as the official CSVs, then scored
from those CSVs exactly as the official script scores its own (SPEC sections 2-3).

Scoring always reads the CSVs back with pandas, so the official round-trip quirk (an empty generation,
or one that reads "NA"/"None"/"null", comes back as NaN and is scored as the string "nan") holds in
every mode.
"""

from __future__ import annotations

import contextlib
import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from evaluator.core.atomic import check_output_dir, write_with_atomic
from evaluator.core.data import SPLITS, load_mia, load_sets, locate_split, mia_files
from evaluator.core.errors import InputError
from evaluator.core.hub import hub_id_of
from evaluator.core.machine import cpu_identity
from evaluator.core.modes import DEFAULT_BATCH_SIZE, DEFAULT_DTYPE, DEFAULT_MAX_NEW_TOKENS, DEFAULT_MODE, check_mode
from evaluator.core.provenance import (
    FORMAT,
    RUN_FILE,
    data_fingerprint,
    git_revision,
    package_versions,
    utc_now,
    write_run,
)
from evaluator.core.results import RESULTS_FILE, EvaluationResult, read_mmlu_average

# Scoring a folder of CSVs (ours or the official script's --keep_files output) needs no model: it lives in
# evaluator.core.tables (torch-free, shared with the report and the bootstrap).
from evaluator.core.tables import MIA_DIR, MIA_SETS, score_generations
from evaluator.model.engine import MODES, Engine, check_checkpoint, distributed_state, load_model, load_tokenizer
from evaluator.model.journal import Journal, checkpoint_fingerprint, run_description, sha256_json

GENERATION_COLUMNS = ["id", "task", "input", "expected_output", "model_output", "nll"]


def _has_carriage_return(df: pd.DataFrame) -> bool:
    return any(isinstance(v, str) and "\r" in v for column in df.columns for v in df[column])


def csv_writer_options(df: pd.DataFrame) -> dict:
    """``to_csv`` options: the official defaults (``index=False``), byte for byte, unless a text holds a
    carriage return. pandas' minimal quoting leaves a lone "\\r" unquoted and ``read_csv`` then splits the
    row in two (the official script loses or shifts rows there); such a table is written with every text
    quoted instead, which ``read_csv`` reads back row for row (NaN-like texts still come back as NaN)."""
    return {"index": False, **({"quoting": csv.QUOTE_NONNUMERIC} if _has_carriage_return(df) else {})}


@contextlib.contextmanager
def naming_the_file(target: Path):
    """An OSError while writing ``target`` (disk full: ENOSPC) names ``target``, not the temporary file."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None or str(exc.filename) != str(target):
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
        raise


def _write_csv(df: pd.DataFrame, target: Path) -> None:
    options = csv_writer_options(df)
    with naming_the_file(target):
        write_with_atomic(target, lambda tmp: df.to_csv(tmp, **options))


# ---------------------------------------------------------------------------------------------------
# A whole run


@dataclass
class EvaluationSettings:
    mode: str = DEFAULT_MODE
    dtype: str = DEFAULT_DTYPE
    batch_size: int = DEFAULT_BATCH_SIZE
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    trust_remote_code: bool = False
    show_progress: bool = True
    recheck_margin: float = 0.0  # fast mode: regenerate officially rows whose greedy margin fell below it
    resume: bool = True  # keep finished rows in --out/.partial/<key>/ and reuse them (evaluator/model/journal.py)

    def result_settings(self) -> dict:
        """The settings that change a result (part of the resume key)."""
        keyed = {"mode": self.mode, "dtype": self.dtype, "max_new_tokens": self.max_new_tokens,
                 "trust_remote_code": self.trust_remote_code}
        if MODES[self.mode].batched:
            keyed.update(batch_size=self.batch_size, recheck_margin=self.recheck_margin)
        return keyed

    def __post_init__(self):
        check_mode(self.mode)
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise InputError("--batch-size and --max-new-tokens must be at least 1")


def evaluate(checkpoint: str | Path, data: str | Path, out: str | Path, split: str | None = None,
             mia: str | Path | None = None, mmlu_metrics: str | Path | None = None,
             mmlu_average: float | None = None,
             settings: EvaluationSettings | None = None,
             mmlu_runner: Callable[[object], float] | None = None) -> EvaluationResult | None:
    """Generate, compute losses, write the official files into ``out`` and score them.

    Every input is checked before anything is written. Under ``accelerate launch`` every process must
    call this; the main process writes and returns the result, the others return None.
    ``mmlu_runner`` (e.g. ``evaluator.model.mmlu.InlineMMLU``) runs MMLU on the main process with the model
    loaded here and returns ``average_acc``, instead of ``mmlu_metrics``/``mmlu_average``.

    Resume (``settings.resume``, on by default, also under ``accelerate launch``): finished rows go to a journal under
    ``out/.partial/<key>/`` as they finish; a run started again with the same checkpoint, rows and settings
    skips them, and the journal is deleted once every final file is written. Official mode journals every
    row, fast mode every finished split or MIA set; either way the files equal an uninterrupted run's
    (evaluator/model/journal.py says what the key covers, and how several processes share the journal).
    """
    began = time.monotonic()
    if mmlu_runner is not None and (mmlu_metrics is not None or mmlu_average is not None):
        raise InputError("give MMLU either as metrics (--mmlu-metrics) or as data to run (--mmlu-data), not both")
    settings = settings or EvaluationSettings()
    out = check_output_dir(out)
    sets = load_sets(data, split)
    documents = load_mia(mia) if mia is not None else None
    if mmlu_metrics is not None:
        mmlu_average = read_mmlu_average(mmlu_metrics)
    check_checkpoint(checkpoint)
    load_tokenizer(checkpoint, settings.trust_remote_code)

    state = distributed_state()
    lm = load_model(checkpoint, settings.dtype, settings.trust_remote_code, device=state.device)
    engine = Engine(lm, settings.mode, settings.max_new_tokens, settings.batch_size, settings.show_progress, state,
                    recheck_margin=settings.recheck_margin)
    journal = _open_journal(out, checkpoint, sets, documents, settings, state) if settings.resume else None
    tables = _generation_tables(engine, journal, sets)
    mia_tables = _mia_tables(engine, journal, documents) if documents is not None else {}
    if not state.is_main_process:
        if journal is not None:
            journal.close()  # the main process removes the journal once the final files are written
        return None
    if mmlu_runner is not None:  # inline MMLU (SPEC 3) on the checkpoint already loaded
        run_mmlu = lambda: mmlu_runner(lm)  # noqa: E731
    else:
        run_mmlu = lambda: mmlu_average  # noqa: E731
    result = _write_and_score(out, tables, mia_tables, run_mmlu)
    data_files = [locate_split(data, name, split).path for name in SPLITS] + (mia_files(mia) if mia is not None else [])
    fingerprint = (journal.description["checkpoint_files"] if journal is not None
                   else checkpoint_fingerprint(checkpoint))
    with naming_the_file(out / RUN_FILE):
        write_run(out, run_record(checkpoint, data, split, mia, settings, fingerprint, data_files,
                                  state.num_processes, time.monotonic() - began))
    if journal is not None:
        journal.remove()  # every final file is written: nothing left to resume
    return result


def run_record(checkpoint, data, split, mia, settings: EvaluationSettings, checkpoint_files: list,
               data_files: list[Path], processes: int, wall_seconds: float) -> dict:
    """What ``run.json`` records (``evaluator.core.provenance``): how this folder was made."""
    import torch  # already loaded with the model

    return {"format": FORMAT, "command": "unlearn-eval evaluate",
            "mode": settings.mode, "dtype": settings.dtype, "batch_size": settings.batch_size,
            "max_new_tokens": settings.max_new_tokens, "recheck_margin": settings.recheck_margin,
            "trust_remote_code": settings.trust_remote_code,
            "checkpoint": str(checkpoint), "checkpoint_hub_id": hub_id_of(checkpoint),
            "checkpoint_fingerprint": f"sha256:{sha256_json(checkpoint_files)}",
            "data": str(data), "split": split, "mia": None if mia is None else str(mia),
            "data_fingerprint": data_fingerprint(data_files),
            "versions": package_versions(),
            "machine": cpu_identity(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "processes": processes, "wall_seconds": round(wall_seconds, 3),
            "git_revision": git_revision(), "written_utc": utc_now()}


def _open_journal(out: Path, checkpoint, sets: dict, documents: dict | None, settings: EvaluationSettings,
                  state) -> Journal:
    """The resume journal of this run (``out/.partial/<key>/``), opened by the main process; every process
    waits until the folder exists before it appends to it."""
    keyed = settings.result_settings()
    if MODES[settings.mode].batched:  # batches, hence results, depend on how rows are sharded
        keyed["processes"] = state.num_processes
    journal = Journal(out, run_description(checkpoint, sets, documents, keyed), rank=state.process_index)
    if state.is_main_process:
        journal.open()
    state.wait_for_everyone()  # the folder exists before any process appends to it
    return journal


def _generation_tables(engine: Engine, journal, sets: dict) -> dict[str, pd.DataFrame]:
    """Per split, the official generation table (``GENERATION_COLUMNS``); empty on the other processes."""
    tables = {}
    for name in SPLITS:
        rows = sets[name]
        outputs = _resumable(journal, engine, name, list(zip(rows["input"], rows["output"])),
                             lambda items, on_row, name=name: engine.generations(items, name=name, on_row=on_row),
                             ("text", "nll"))
        if outputs is not None:
            tables[name] = pd.DataFrame({"id": rows["id"], "task": rows["task"], "input": rows["input"],
                                         "expected_output": rows["output"],
                                         "model_output": [text for text, _ in outputs],
                                         "nll": [nll for _, nll in outputs]}, columns=GENERATION_COLUMNS)
    return tables


def _mia_tables(engine: Engine, journal, documents: dict) -> dict[str, pd.DataFrame]:
    """Per MIA set, the (id, nll) table of whole-document losses; empty on the other processes."""
    mia_tables = {}
    for name in MIA_SETS:
        losses = _resumable(journal, engine, f"mia_{name}", documents[name]["document"].tolist(),
                            lambda items, on_row, name=name: engine.document_losses(items, name=f"mia {name}",
                                                                                    on_row=on_row),
                            ("nll",))
        if losses is not None:
            mia_tables[name] = pd.DataFrame({"id": documents[name]["id"], "nll": losses})
    return mia_tables


def _write_and_score(out: Path, tables: dict, mia_tables: dict, mmlu_average: Callable[[], float | None]):
    """Write the official CSVs, score them as read back (not stale shards a folder may also hold), then write
    ``evaluation_results.jsonl``. ``mmlu_average`` is called after the CSVs are written (inline MMLU runs
    then)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        _write_csv(table, out / f"{name}_0.csv")
    for name, table in mia_tables.items():
        _write_csv(table, out / MIA_DIR / f"{name}_0.csv")
    generations = {name: pd.read_csv(out / f"{name}_0.csv") for name in tables}
    mia_nll = ({name: pd.read_csv(out / MIA_DIR / f"{name}_0.csv")["nll"].tolist() for name in mia_tables}
               if mia_tables else None)
    result = score_generations(generations, mia_nll, mmlu_average())
    with naming_the_file(out / RESULTS_FILE):
        result.write(out / RESULTS_FILE)
    return result


def _resumable(journal, engine: Engine, stream: str, items: list, compute, fields: tuple[str, ...]):
    """``compute(items, on_row)`` for the rows the journal does not hold yet; the journal's rows for the rest.
    Official mode: per row. Fast mode: the whole stream or nothing (a row's result depends on its batch)."""
    if journal is None:
        return compute(items, None)
    unpack = (lambda values: values) if len(fields) > 1 else (lambda values: values[0])
    pack = (lambda result: result) if len(fields) > 1 else (lambda result: (result,))
    done = {i: unpack(values) for i, values in journal.done(stream, len(items), fields).items()}
    if engine.state is not None and engine.state.num_processes > 1:
        engine.state.wait_for_everyone()  # every process has read the same rows before any appends more
    if engine.supports_row_callback():
        todo = [i for i in range(len(items)) if i not in done]
        if todo:
            fresh = compute([items[i] for i in todo],
                            lambda j, result: journal.append(stream, todo[j], pack(result), fields))
            if fresh is None:  # a process other than the main one: its rows are journaled and gathered
                return None
            done.update(zip(todo, fresh))
    elif len(done) < len(items):
        results = compute(items, None)  # None on the processes other than the main one
        for i, result in enumerate(results or []):
            journal.append(stream, i, pack(result), fields)
        return results
    return [done[i] for i in range(len(items))]

