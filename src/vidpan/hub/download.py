"""A verified download cache on top of ``huggingface_hub``.

Files come from :func:`huggingface_hub.hf_hub_download` (its cache under ``HF_HOME`` /
``HF_HUB_CACHE``, resumable downloads, ``HF_HUB_OFFLINE``, ``HF_TOKEN``, its progress bar), then
vidpan checks the SHA-256 of the bytes on disk against, in order:

1. the hash in the zoo table (the hub's published LFS hash);
2. the hub's own LFS hash, which ``huggingface_hub`` uses as the blob's file name;
3. the hash recorded the first time this (repo, revision, path) was downloaded (trust on first
   use; recorded in ``vidpan-trust.json`` inside the repository's cache folder).

A file that fails the check is deleted from the cache (blob and snapshot link) before the error
is raised, so a later run never trusts it. A successful check is remembered per blob (size and
mtime), so a second run does not re-hash gigabytes.

``huggingface_hub`` is imported inside the functions: ``import vidpan.hub`` stays light.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import posixpath
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from vidpan.errors import InputError

TRUST_FILE = "vidpan-trust.json"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FetchedFile:
    """A downloaded, verified file."""

    path: Path  # inside the huggingface_hub cache (a snapshot link to the blob)
    sha256: str
    repo: str
    revision: str  # as requested
    filename: str
    cache_folder: Path  # the repository's folder in the cache (models--owner--name)


def hf_module() -> ModuleType:
    """``huggingface_hub``, or an :class:`InputError` saying how to install it."""
    try:
        import huggingface_hub
    except ImportError as exc:
        raise InputError("downloading models needs huggingface_hub: pip install 'vidpan[hub]'") from exc
    return huggingface_hub


def repo_cache_folder(repo: str) -> Path:
    hf = hf_module()
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    del hf
    return Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo, repo_type="model")


def is_offline() -> bool:
    hf_module()
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


# --------------------------------------------------------------------------------------------
# Trust file (JSON beside the download)
# --------------------------------------------------------------------------------------------


def _read_trust(folder: Path) -> dict[str, Any]:
    path = folder / TRUST_FILE
    if not path.is_file():
        return {"files": {}, "patterns": {}, "verified": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable trust record ({exc}); delete it to start over", path=path) from exc
    for key in ("files", "patterns", "verified"):
        data.setdefault(key, {})
    return data


def _write_trust(folder: Path, data: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{TRUST_FILE}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, folder / TRUST_FILE)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Errors from huggingface_hub -> one-line InputErrors
# --------------------------------------------------------------------------------------------


def _how_to_fetch(repo: str, filename: str, revision: str) -> str:
    return (
        "run the same command once with network access (unset HF_HUB_OFFLINE), or fetch it with "
        f"`hf download {repo} {filename} --revision {revision}`"
    )


def _translate(exc: Exception, what: str, repo: str, filename: str, revision: str) -> InputError:
    from huggingface_hub import errors

    if isinstance(exc, errors.LocalEntryNotFoundError):
        return InputError(
            f"{what} is not in the local cache and the hub cannot be reached"
            f"{' (HF_HUB_OFFLINE=1)' if is_offline() else ''}: {_how_to_fetch(repo, filename, revision)}"
        )
    if isinstance(exc, errors.GatedRepoError):
        return InputError(f"{what}: {repo} is gated: accept its terms on the hub and set HF_TOKEN")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return InputError(f"{what}: repository {repo} not found on the hub (private? set HF_TOKEN)")
    if isinstance(exc, errors.RevisionNotFoundError):
        return InputError(f"{what}: revision {revision!r} not found in {repo}")
    if isinstance(exc, errors.EntryNotFoundError):
        return InputError(f"{what}: no file {filename!r} in {repo} at {revision}")
    return InputError(f"{what}: download of {repo}/{filename}@{revision} failed ({exc})")


# --------------------------------------------------------------------------------------------
# Resolving a file-name pattern against the hub's listing
# --------------------------------------------------------------------------------------------


def resolve_pattern(repo: str, revision: str, pattern: str, *, what: str) -> tuple[str, str | None]:
    """The one file of ``repo@revision`` matching ``pattern`` -> (path, published LFS sha256 or None).

    Resolved once online, then remembered in the trust file (so offline runs work).
    """
    folder = repo_cache_folder(repo)
    trust = _read_trust(folder)
    key = f"{revision}/{pattern}"
    known = trust["patterns"].get(key)
    if known:
        return str(known["path"]), known.get("sha256")
    if is_offline():
        raise InputError(
            f"{what}: its file name ({pattern}) has not been resolved yet and HF_HUB_OFFLINE=1: "
            "run the same command once with network access"
        )
    hf = hf_module()
    directory = posixpath.dirname(pattern)
    try:
        listing = list(hf.HfApi().list_repo_tree(repo, path_in_repo=directory or None, revision=revision))
    except Exception as exc:
        raise _translate(exc, what, repo, pattern, revision) from exc
    matches = [
        f for f in listing if getattr(f, "size", None) is not None and fnmatch.fnmatchcase(f.path, pattern)
    ]
    if len(matches) != 1:
        names = ", ".join(sorted(f.path for f in matches)) or "none"
        raise InputError(
            f"{what}: expected exactly one file matching {pattern} in {repo}@{revision}, found {names}; "
            f"pass --weights hf://{repo}@{revision}/<file> explicitly"
        )
    found = matches[0]
    sha = found.lfs.sha256 if getattr(found, "lfs", None) is not None else None
    trust["patterns"][key] = {"path": found.path, "sha256": sha}
    _write_trust(folder, trust)
    return found.path, sha


# --------------------------------------------------------------------------------------------
# Download + verify
# --------------------------------------------------------------------------------------------


def _discard(path: Path) -> None:
    """Remove a snapshot link and the blob it points to (nothing left that a later run would trust)."""
    target = path.resolve()
    for p in (path, target):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def fetch_file(
    repo: str,
    filename: str,
    *,
    revision: str = "main",
    expected_sha256: str | None = None,
    what: str | None = None,
) -> FetchedFile:
    """Download (or find in the cache) ``repo/filename@revision`` and verify its SHA-256.

    Raises:
        InputError: offline without a cached copy (naming the model and how to fetch it), a hub
            error, or a hash mismatch (naming the file and the expected hash; the bad file is deleted).
    """
    hf = hf_module()
    what = what or f"hf://{repo}@{revision}/{filename}"
    try:
        local = Path(hf.hf_hub_download(repo_id=repo, filename=filename, revision=revision))
    except OSError as exc:  # size consistency check, truncated transfer, disk errors
        if type(exc).__module__.startswith("huggingface_hub"):
            raise _translate(exc, what, repo, filename, revision) from exc
        raise InputError(
            f"{what}: download of {filename} failed ({exc}); expected sha256 "
            f"{expected_sha256 or 'unknown (first download)'}; nothing unverified is used: run again to resume"
        ) from exc
    except Exception as exc:
        raise _translate(exc, what, repo, filename, revision) from exc
    folder = repo_cache_folder(repo)
    trust = _read_trust(folder)
    blob = local.resolve()
    key = f"{revision}/{filename}"
    expected, because = expected_sha256, "the zoo table"
    if expected is None and _HEX64.fullmatch(blob.name):
        expected, because = blob.name, "the hub's LFS hash"
    if expected is None and key in trust["files"]:
        expected, because = (
            trust["files"][key],
            "the hash recorded at the first download (trust on first use)",
        )
    stat = blob.stat()
    seen = trust["verified"].get(blob.name)
    if (
        seen
        and seen["size"] == stat.st_size
        and seen["mtime_ns"] == stat.st_mtime_ns
        and (expected is None or seen["sha256"] == expected)
    ):
        actual = str(seen["sha256"])
    else:
        actual = sha256_file(blob)
    if expected is not None and actual != expected.lower():
        _discard(local)
        trust["verified"].pop(blob.name, None)
        _write_trust(folder, trust)
        raise InputError(
            f"{what}: {filename} has sha256 {actual}, expected {expected} ({because}); the file was "
            "removed from the cache"
            + (
                f" (if the hub's file changed on purpose, delete the entry {key!r} in {folder / TRUST_FILE})"
                if because.startswith("the hash recorded")
                else ", run again to re-download"
            )
        )
    trust["files"].setdefault(key, actual)
    trust["verified"][blob.name] = {"sha256": actual, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    _write_trust(folder, trust)
    return FetchedFile(
        path=local, sha256=actual, repo=repo, revision=revision, filename=filename, cache_folder=folder
    )


def cached_file(repo: str, filename: str, revision: str) -> Path | None:
    """The cached copy of ``repo/filename@revision`` if ``huggingface_hub`` has one (no network)."""
    hf = hf_module()
    found = hf.try_to_load_from_cache(repo_id=repo, filename=filename, revision=revision)
    return Path(found) if isinstance(found, str) else None


def cached_pattern(repo: str, revision: str, pattern: str) -> str | None:
    """The file name a pattern resolved to earlier (recorded in the trust file), if any."""
    known = _read_trust(repo_cache_folder(repo))["patterns"].get(f"{revision}/{pattern}")
    return str(known["path"]) if known else None
