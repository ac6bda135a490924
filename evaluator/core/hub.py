"""A model named by a folder or by a Hugging Face Hub id (``owner/name``, optionally ``@revision``).

``resolve_model`` turns either into the folder to load: an existing folder is itself; an id is looked up
in the local Hugging Face cache (``huggingface_hub.snapshot_download(local_files_only=True)``), or fetched
when ``allow_download`` is set (the CLI's ``--download``, refused while ``HF_HUB_OFFLINE`` is set). An id
that is not in the cache is an ``InputError``: one line naming the id, the cache folder searched and the
command that fetches it. Torch-free; ``huggingface_hub`` is imported only when an id is looked up.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from evaluator.core.errors import InputError

# owner/name[@revision], the characters the Hub allows in a repo id (letters, digits, '-', '_', '.').
REPO_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w./-]+))?$")
OFFLINE_VALUES = {"1", "on", "yes", "true"}


def split_repo_id(ref: str | os.PathLike) -> tuple[str, str | None] | None:
    """``(repo_id, revision)`` when ``ref`` reads as a Hub id (``owner/name`` or ``owner/name@rev``), else
    ``None`` (an absolute or ``./`` path, more than one ``/``, characters the Hub does not allow)."""
    text = os.fspath(ref)
    match = REPO_ID.match(text)
    if match is None or ".." in match["repo"]:
        return None
    return match["repo"], match["revision"]


def cache_dir() -> Path:
    """The Hugging Face hub cache folder, read from the environment now (the same order as
    ``huggingface_hub``: ``HF_HUB_CACHE``, ``HUGGINGFACE_HUB_CACHE``, ``HF_HOME``/hub,
    ``XDG_CACHE_HOME``/huggingface/hub, ``~/.cache/huggingface/hub``)."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.environ[name]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set (to 1/on/yes/true): no download is allowed."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in OFFLINE_VALUES


def fetch_command(repo_id: str, revision: str | None = None, program: str = "hf") -> str:
    """The shell command that puts ``repo_id`` into the cache (``program``: ``hf`` since huggingface_hub
    1.0, ``huggingface-cli`` before)."""
    return f"{program} download {repo_id}" + (f" --revision {revision}" if revision else "")


def check_download_allowed() -> None:
    """``--download`` needs the network: an ``InputError`` while ``HF_HUB_OFFLINE`` is set."""
    if offline():
        raise InputError("--download: HF_HUB_OFFLINE is set, so nothing can be fetched; unset it "
                         "(HF_HUB_OFFLINE=0) to download, or fetch the model beforehand")


def hub_id_of(folder: str | os.PathLike) -> str | None:
    """``owner/name@commit`` when ``folder`` is a snapshot in a Hugging Face cache
    (``.../models--OWNER--NAME/snapshots/COMMIT``), else ``None``: what ``run.json`` records beside the path."""
    parts = Path(folder).parts
    if len(parts) < 3 or parts[-2] != "snapshots" or not parts[-3].startswith("models--"):
        return None
    owner_name = parts[-3][len("models--"):].split("--")
    if len(owner_name) != 2:
        return None
    return "/".join(owner_name) + "@" + parts[-1]


def resolve_model(ref: str | os.PathLike, allow_download: bool = False, download_option: str | None = None
                  ) -> Path:
    """The folder that holds the model ``ref`` names: an existing folder is returned as it is; a Hub id
    (``owner/name[@revision]``) is the snapshot folder in the local cache (fetched first when
    ``allow_download``). Anything else (no such folder, a file) is returned as it is, for the caller's
    checkpoint check to name the problem. An id not in the cache raises ``InputError`` in one line (which
    names ``download_option``, e.g. ``--download``, where the caller has one)."""
    path = Path(ref)
    parsed = split_repo_id(ref)
    if path.exists() or parsed is None:
        return path
    repo_id, revision = parsed
    if allow_download:
        check_download_allowed()
    cache = cache_dir()
    from huggingface_hub import snapshot_download  # lazy: only an id needs it
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        folder = snapshot_download(repo_id, revision=revision, cache_dir=cache,
                                   local_files_only=not allow_download)
    except GatedRepoError as error:
        raise InputError(f"{ref}: a gated repository; request access on https://huggingface.co/{repo_id} "
                         f"and log in (hf auth login), then retry ({type(error).__name__})") from None
    except RepositoryNotFoundError:
        raise InputError(f"{ref}: no such repository on the Hugging Face Hub (or it is private: log in "
                         f"with hf auth login)") from None
    except (HfHubHTTPError, OSError, ValueError) as error:
        if allow_download:
            raise InputError(f"{ref}: download failed ({type(error).__name__}: {str(error).splitlines()[0]})"
                             ) from None
        fetch, legacy = fetch_command(repo_id, revision), fetch_command(repo_id, revision, "huggingface-cli")
        raise InputError(f"{ref}: not a folder, and not in the Hugging Face cache {cache}; fetch it with "
                         f"`{fetch}` (`{legacy}` before huggingface_hub 1.0; a gated repo needs an access request on "
                         f"https://huggingface.co/{repo_id} first)"
                         + (f", or pass {download_option}" if download_option else "")) from None
    return Path(folder)
