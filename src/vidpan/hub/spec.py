"""What a user may pass as ``--weights``: a zoo name, ``hf://owner/repo[@revision]/path``, or a path.

Pure string parsing (no I/O beyond ``Path.exists``), so it is cheap to call from any CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vidpan.errors import InputError
from vidpan.hub.zoo import ZooEntry, load_zoo

HF_PREFIX = "hf://"


@dataclass(frozen=True)
class WeightsSpec:
    """A parsed ``--weights`` value.

    ``kind`` is ``zoo`` (``entry`` set), ``hf`` (``repo``/``revision``/``path`` set; ``path`` may
    be a glob for zoo entries whose exact file name is not known) or ``local`` (``local`` set).
    """

    text: str
    kind: Literal["zoo", "hf", "local"]
    entry: ZooEntry | None = None
    repo: str = ""
    revision: str = "main"
    path: str = ""
    local: Path | None = None

    @property
    def is_remote(self) -> bool:
        return self.kind == "hf" or (self.entry is not None and not self.entry.is_local)


def parse_hf_url(text: str) -> tuple[str, str, str]:
    """``hf://owner/repo[@revision]/path/in/repo`` -> (repo id, revision, path)."""
    rest = text[len(HF_PREFIX) :]
    parts = rest.split("/")
    if len(parts) < 3 or not parts[0] or not parts[1] or not all(parts[2:]):
        raise InputError(
            f"--weights {text!r}: expected hf://owner/repo[@revision]/path/to/file (e.g. "
            "hf://zhangtao-whu/DVIS_Plus@a701fe4.../DVIS++/weights/online_vitl_ytvis21_623.pth)"
        )
    owner, name = parts[0], parts[1]
    revision = "main"
    if "@" in name:
        name, revision = name.split("@", 1)
        if not name or not revision:
            raise InputError(f"--weights {text!r}: empty repository name or revision around '@'")
    return f"{owner}/{name}", revision, "/".join(parts[2:])


def parse_spec(spec: str | Path) -> WeightsSpec:
    """Classify ``spec``: an existing path wins, then ``hf://``, then a zoo name."""
    text = str(spec)
    if text.startswith(HF_PREFIX):
        repo, revision, path = parse_hf_url(text)
        return WeightsSpec(text=text, kind="hf", repo=repo, revision=revision, path=path)
    zoo = load_zoo()
    if text in zoo and not Path(text).exists():
        entry = zoo[text]
        if entry.is_local:
            return WeightsSpec(text=text, kind="zoo", entry=entry, local=entry.local_path)
        return WeightsSpec(
            text=text,
            kind="zoo",
            entry=entry,
            repo=entry.repo,
            revision=entry.revision,
            path=entry.file or entry.file_pattern,
        )
    return WeightsSpec(text=text, kind="local", local=Path(text))
