"""The verified download cache (vidpan.hub.download) against the loopback fake hub, in subprocesses
(``huggingface_hub`` reads ``HF_ENDPOINT`` / ``HF_HOME`` / ``HF_HUB_OFFLINE`` at import)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from hubtools import FakeHub, run_py

REPO = "someone/weights"
DATA = bytes(range(256)) * 4096  # 1 MiB

FETCH = """
import sys
from vidpan.errors import InputError
from vidpan.hub.download import fetch_file
try:
    f = fetch_file({repo!r}, {path!r}, revision="main", expected_sha256={expected!r})
except InputError as exc:
    print("ERROR", exc)
    sys.exit(2)
print("OK", f.sha256, f.path)
"""


def _fetch(
    env: dict[str, str], path: str = "w.bin", expected: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run_py(FETCH.format(repo=REPO, path=path, expected=expected), env)


def _blobs(env: dict[str, str]) -> list[Path]:
    root = Path(env["HF_HOME"]) / "hub"
    return sorted(p for p in root.rglob("blobs/*") if p.is_file())


def test_download_verifies_and_second_run_is_cached(fake_hub: FakeHub, hub_env: dict[str, str]) -> None:
    fake_hub.add(REPO, "w.bin", DATA)
    first = _fetch(hub_env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split()[1] == hashlib.sha256(DATA).hexdigest()
    gets = [r for r in fake_hub.requests if r[0] == "GET"]
    assert len(gets) == 1
    again = _fetch(hub_env)
    assert again.returncode == 0, again.stderr
    assert len([r for r in fake_hub.requests if r[0] == "GET"]) == 1  # served from the cache


def test_corrupted_download_is_refused_and_removed(fake_hub: FakeHub, hub_env: dict[str, str]) -> None:
    fake_hub.add(REPO, "w.bin", DATA, mode="corrupt")
    expected = hashlib.sha256(DATA).hexdigest()
    result = _fetch(hub_env)
    assert result.returncode == 2
    assert (
        "w.bin" in result.stdout and expected in result.stdout and "removed from the cache" in result.stdout
    )
    assert _blobs(hub_env) == []  # nothing left that a later run would trust
    snapshots = list((Path(hub_env["HF_HOME"]) / "hub").rglob("snapshots/*/w.bin"))
    assert snapshots == []


def test_zoo_hash_mismatch_names_expected_hash(fake_hub: FakeHub, hub_env: dict[str, str]) -> None:
    fake_hub.add(REPO, "w.bin", DATA, lfs=False)
    wanted = "ab" * 32
    result = _fetch(hub_env, expected=wanted)
    assert result.returncode == 2
    assert wanted in result.stdout and "the zoo table" in result.stdout
    assert _blobs(hub_env) == []


def test_truncated_download_is_an_error_naming_file_and_hash(
    fake_hub: FakeHub, hub_env: dict[str, str]
) -> None:
    fake_hub.add(REPO, "w.bin", DATA, mode="short", lfs=True)
    result = _fetch(hub_env, expected=hashlib.sha256(DATA).hexdigest())
    assert result.returncode == 2, result.stdout + result.stderr
    assert "w.bin" in result.stdout and hashlib.sha256(DATA).hexdigest() in result.stdout
    assert _blobs(hub_env) == []  # only an .incomplete part (resumable), never a blob


def test_interrupted_download_resumes(fake_hub: FakeHub, hub_env: dict[str, str]) -> None:
    # huggingface_hub writes in 10 MiB chunks: cut after more than one chunk so there is a part to keep.
    big = DATA * 24
    fake_hub.add(REPO, "w.bin", big, mode="cut_once")
    result = _fetch(hub_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split()[1] == hashlib.sha256(big).hexdigest()
    ranges = [r[2] for r in fake_hub.requests if r[0] == "GET"]
    assert len(ranges) == 2 and ranges[0] == "", ranges
    start = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= len(big) // 2, ranges  # resumed where the first transfer stopped, not restarted


def test_trust_on_first_use_refuses_a_changed_file(fake_hub: FakeHub, hub_env: dict[str, str]) -> None:
    # Not an LFS file (no published hash): the first download's hash is recorded and enforced.
    fake_hub.add(REPO, "w.bin", DATA, lfs=False)
    assert _fetch(hub_env).returncode == 0
    trust = next((Path(hub_env["HF_HOME"]) / "hub").rglob("vidpan-trust.json"))
    assert json.loads(trust.read_text())["files"]["main/w.bin"] == hashlib.sha256(DATA).hexdigest()
    fake_hub.add(REPO, "w.bin", DATA[::-1], lfs=False)  # the hub's file changes in a new commit
    fake_hub.commit = "f" * 40
    result = _fetch(hub_env)
    assert result.returncode == 2
    assert "trust on first use" in result.stdout and hashlib.sha256(DATA).hexdigest() in result.stdout


def test_offline_without_cache_names_model_and_how_to_fetch(
    fake_hub: FakeHub, hub_env: dict[str, str]
) -> None:
    fake_hub.add(REPO, "w.bin", DATA)
    result = _fetch({**hub_env, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2
    assert "HF_HUB_OFFLINE=1" in result.stdout and "hf download someone/weights w.bin" in result.stdout
    assert fake_hub.requests == []
