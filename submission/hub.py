"""MODEL as a Hugging Face id (``owner/name``, optionally ``@revision``) read from the local cache.

The organizers' machine is offline, so this only ever reads the cache folder (the layout
``huggingface_hub`` writes: ``models--OWNER--NAME/refs/<revision>`` holding a commit hash, and
``snapshots/<commit>/<files>``); it never downloads. An existing folder is returned as it is.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .data import SubmissionInputError

REPO_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w./-]+))?$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def cache_dir() -> Path:
    """The Hugging Face hub cache, in ``huggingface_hub``'s order: ``HF_HUB_CACHE``,
    ``HUGGINGFACE_HUB_CACHE``, ``HF_HOME``/hub, ``XDG_CACHE_HOME``/huggingface/hub, ~/.cache/huggingface/hub."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.environ[name]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")).expanduser() / "huggingface" / "hub"


def _snapshot(cache: Path, repo_id: str, revision: str) -> Path | None:
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = revision
    if not COMMIT.match(revision):
        ref = repo / "refs" / revision
        if not ref.is_file():
            return None
        commit = ref.read_text(encoding="utf-8").strip()
    snapshot = repo / "snapshots" / commit
    return snapshot if snapshot.is_dir() else None


def resolve_model(ref: str | os.PathLike) -> Path:
    """The folder of the model ``ref`` names: an existing folder itself, or a Hugging Face id's snapshot in
    the local cache. Otherwise ``SubmissionInputError``, one line naming the cache and the fetch command."""
    path = Path(ref)
    if path.is_dir():
        return path
    match = REPO_ID.match(os.fspath(ref))
    if match is None or path.exists() or ".." in match["repo"]:
        return path  # not an id: the folder check that follows names the problem
    repo_id, revision = match["repo"], match["revision"] or "main"
    cache = cache_dir()
    snapshot = _snapshot(cache, repo_id, revision)
    if snapshot is None:
        fetch = f"download {repo_id}" + (f" --revision {revision}" if match["revision"] else "")
        raise SubmissionInputError(
            f"{ref}: not a model folder, and not in the Hugging Face cache {cache} (this never downloads); "
            f"fetch it with `hf {fetch}` (`huggingface-cli {fetch}` before huggingface_hub 1.0; a gated repo "
            f"needs an access request on https://huggingface.co/{repo_id} first)")
    return snapshot
