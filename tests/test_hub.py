"""evaluator.core.hub: a folder or a Hugging Face id, resolved from the local cache only (no network)."""

from __future__ import annotations

import pytest

from evaluator.core.errors import InputError
from evaluator.core.hub import resolve_model, split_repo_id

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_cache(root, repo_id="lume-test/tiny", commit=COMMIT):
    """The hub cache layout: models--OWNER--NAME/refs/main and snapshots/<commit>/<files>."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    return snapshot


@pytest.mark.parametrize("ref, expected", [
    ("owner/name", ("owner/name", None)),
    ("open-unlearning/OLMo-1B_v1.0@abc123", ("open-unlearning/OLMo-1B_v1.0", "abc123")),
    ("/abs/path", None), ("./rel", None), ("a/b/c", None), ("../x", None), ("plain", None),
])
def test_split_repo_id(ref, expected):
    assert split_repo_id(ref) == expected


def test_folder_is_itself_and_id_is_its_snapshot(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshot = fake_cache(tmp_path / "hub")
    assert resolve_model(tmp_path) == tmp_path
    assert resolve_model("lume-test/tiny") == snapshot
    assert resolve_model(f"lume-test/tiny@{COMMIT}") == snapshot


def test_missing_id_names_the_cache_and_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(InputError) as error:
        resolve_model("lume-test/absent", download_option="--download")
    message = str(error.value)
    assert "\n" not in message
    for part in ("lume-test/absent", str(tmp_path / "hub"), "hf download lume-test/absent",
                 "huggingface-cli download lume-test/absent", "access request", "--download"):
        assert part in message, (part, message)


def test_not_a_folder_nor_an_id_is_left_to_the_checkpoint_check(tmp_path):
    assert resolve_model(tmp_path / "absent") == tmp_path / "absent"
    (tmp_path / "file").write_text("")
    assert resolve_model(tmp_path / "file") == tmp_path / "file"


def test_download_refused_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="HF_HUB_OFFLINE"):
        resolve_model("lume-test/absent", allow_download=True)


def test_hub_id_of_a_snapshot(tmp_path):
    from evaluator.core.hub import hub_id_of

    assert hub_id_of(fake_cache(tmp_path / "hub")) == f"lume-test/tiny@{COMMIT}"
    assert hub_id_of(tmp_path) is None
