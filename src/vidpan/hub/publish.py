"""Publishing: ``save_pretrained(dir)`` (model.safetensors + config.yaml + a generated model card)
and ``push`` (the same folder uploaded to a Hugging Face Hub repository).

``SRC`` is a native weights file or a run directory of ``vidpan train`` (its
``model_final.safetensors``; a recipe's run directory holds one folder per stage — name the stage
folder). The folder is assembled in a temporary directory and renamed, so a failure leaves nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vidpan.errors import InputError
from vidpan.hub.card import card_inputs, render_card

FINAL_MODEL = "model_final.safetensors"


@dataclass(frozen=True)
class PublishSource:
    weights: Path
    run_dir: Path | None


def find_source(src: str | Path) -> PublishSource:
    """``src`` (weights file or run directory) -> the weights and the run directory they came from."""
    src = Path(src)
    if src.is_file():
        run = src.parent if (src.parent / "config.yaml").is_file() else None
        return PublishSource(weights=src, run_dir=run)
    if src.is_dir():
        if (src / FINAL_MODEL).is_file():
            return PublishSource(weights=src / FINAL_MODEL, run_dir=src)
        stages = sorted(p.parent.name for p in src.glob(f"*/{FINAL_MODEL}"))
        if stages:
            raise InputError(
                f"a recipe run with several stages ({', '.join(stages)}): pass the stage folder, "
                f"e.g. {src / stages[-1]}",
                path=src,
            )
        raise InputError(f"no {FINAL_MODEL} in this run directory (has training finished?)", path=src)
    raise InputError("no such weights file or run directory", path=src)


def save_pretrained(
    out_dir: str | Path,
    src: str | Path,
    *,
    name: str | None = None,
    recipe: str | None = None,
    scores: str | Path | None = None,
    scores_command: str = "",
    licence: str = "not stated",
    notes: str | Path | None = None,
) -> Path:
    """Write ``out_dir`` = ``model.safetensors`` + ``config.yaml`` + ``README.md`` (the card).

    ``out_dir`` must not exist or be empty; it is created atomically.
    """
    from vidpan.config import save_yaml

    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError("output folder exists and is not empty", path=out_dir)
    source = find_source(src)
    note_text = Path(notes).read_text() if notes is not None and Path(notes).is_file() else str(notes or "")
    inputs = card_inputs(
        source.weights,
        name=name,
        run_dir=source.run_dir,
        recipe=recipe,
        scores=Path(scores) if scores is not None else None,
        scores_command=scores_command,
        licence=licence,
        notes=note_text,
    )
    inputs = type(inputs)(**{**inputs.__dict__, "weights_name": "model.safetensors"})
    card = render_card(inputs)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        shutil.copyfile(source.weights, tmp / "model.safetensors")
        save_yaml(inputs.config, tmp / "config.yaml")
        (tmp / "README.md").write_text(card)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
        raise
    return out_dir


def push(
    src: str | Path,
    repo: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload vidpan model",
    **card: object,
) -> str:
    """``save_pretrained`` into a temporary folder, then create ``repo`` (if needed) and upload it.

    Returns the commit URL. Authentication: ``HF_TOKEN`` or ``hf auth login``.
    """
    from vidpan.hub.download import hf_module

    hf = hf_module()
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_pretrained(Path(tmp) / "model", src, **card)  # type: ignore[arg-type]
        api = hf.HfApi()
        try:
            api.create_repo(repo, private=private, exist_ok=True)
            info = api.upload_folder(
                repo_id=repo, folder_path=str(folder), revision=revision, commit_message=commit_message
            )
        except Exception as exc:
            raise push_error(exc, repo) from exc
    return str(getattr(info, "commit_url", info))


def push_error(exc: Exception, repo: str) -> InputError:
    """A hub refusal -> one line saying what to do (401: log in; 403: no write access)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    namespace = repo.split("/")[0] if "/" in repo else "your namespace"
    if status == 401:
        return InputError(
            f"push to {repo} refused by the hub (HTTP 401: not logged in or the token is invalid): set "
            "HF_TOKEN to a token with write access, or run `hf auth login`"
        )
    if status == 403:
        return InputError(
            f"push to {repo} refused by the hub (HTTP 403: this token may not write to {namespace!r}): use a "
            "token with write permission there, or --repo <your-name>/<model>"
        )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InputError(f"push to {repo} failed ({first})" + (f" [HTTP {status}]" if status else ""))
